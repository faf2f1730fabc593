"""Model zoo: torch builders that export ONNX models with eval sets and cards.

Builders (``build(out_dir, *, quick=False, seed=0) -> card``): ``lenet.build``,
``resnet.build``, ``dlrm.build`` / ``build_bag`` / ``build_small``, ``bert.build_minilm`` /
``build_tinybert`` / ``build_bert_base``. CLI: ``python -m benchmarks.models.build_zoo``.
"""
