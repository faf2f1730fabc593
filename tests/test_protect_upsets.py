"""Upset models (single, multi-cell clusters), the row-end rule, and column interleaving."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from accelsim.errors import UserError
from faults.protect.codes import SecdedCode
from faults.protect.upsets import (SINGLE, ColumnInterleaving, UpsetError, UpsetModel, draw_cluster_errors,
                                   parse_upset_model)

MCU = "mcu:1=0.6,2=0.25,3=0.1,4=0.05"


# ---------------------------------------------------------------- upset models

def test_parse_single_and_mcu():
    assert parse_upset_model("single") == SINGLE and SINGLE.sizes == (1,) and SINGLE.kind == "single"
    model = parse_upset_model(MCU)
    assert model.sizes == (1, 2, 3, 4) and model.fractions == (0.6, 0.25, 0.1, 0.05)
    assert model.kind == "mcu" and model.name == MCU and parse_upset_model(model.name) == model
    assert model.max_size == 4 and model.mean_size == pytest.approx(1.6)
    assert parse_upset_model("mcu:3=0.5,1=0.5").sizes == (1, 3)  # kept sorted by size
    assert parse_upset_model("mcu:1=1") == SINGLE


@pytest.mark.parametrize("spec,fragment", [
    ("double", "unknown upset model"), ("single:2", "unknown upset model"), ("mcu:", "SIZE=FRACTION"),
    ("mcu:1=0.5,2=0.4", "sum to 0.9"), ("mcu:1=0.5,2=0.5000001", "not 1"), ("mcu:0=1", ">= 1"),
    ("mcu:1.5=1", "SIZE=FRACTION"), ("mcu:1=0.5,1=0.5", "twice"), ("mcu:1=x", "not a number"),
    ("mcu:1=-0.5,2=1.5", ">= 0"), ("mcu:1=nan", "finite"), ("mcu:-1=1", "SIZE=FRACTION"),
])
def test_parse_rejects_malformed_models(spec, fragment):
    with pytest.raises(UpsetError, match=fragment) as info:
        parse_upset_model(spec)
    assert isinstance(info.value, UserError) and "\n" not in str(info.value)


def test_fractions_within_1e_9_are_accepted():
    assert parse_upset_model("mcu:1=0.5,2=0.5000000001").sizes == (1, 2)


def test_cluster_sizes_follow_the_distribution_chi_square():
    model = parse_upset_model(MCU)
    draws = model.draw_sizes(np.random.default_rng(2024), 20000)
    observed = np.array([(draws == s).sum() for s in model.sizes])
    assert observed.sum() == 20000 and set(np.unique(draws)) == {1, 2, 3, 4}
    result = stats.chisquare(observed, np.asarray(model.fractions) * 20000)
    assert result.pvalue > 0.01
    # and a wrong distribution is rejected by the same test
    assert stats.chisquare(observed, np.array([0.7, 0.2, 0.07, 0.03]) * 20000).pvalue < 1e-6


def test_draws_are_deterministic_and_need_a_generator():
    model = parse_upset_model(MCU)
    a = model.draw_sizes(np.random.default_rng(5), 100)
    assert np.array_equal(a, model.draw_sizes(np.random.default_rng(5), 100))
    assert (SINGLE.draw_sizes(np.random.default_rng(0), 50) == 1).all()
    with pytest.raises(TypeError, match="Generator"):
        model.draw_sizes(np.random.RandomState(0), 3)


# ---------------------------------------------------------------- interleaving map

def test_mapping_small_example_by_hand():
    # 3 codewords of 4 bits, degree 2: row 0 = cw0,cw1 interleaved (8 cells), row 1 = cw2 alone (4 cells)
    layout = ColumnInterleaving(code_bits=4, codewords=3, degree=2)
    assert (layout.cells, layout.rows, layout.row_cells) == (12, 2, 8)
    codeword, bit = layout.cell_to_codeword(np.arange(12))
    assert codeword.tolist() == [0, 1, 0, 1, 0, 1, 0, 1, 2, 2, 2, 2]
    assert bit.tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 0, 1, 2, 3]
    assert int(layout.codeword_to_cell(1, 2)) == 5 and int(layout.codeword_to_cell(2, 3)) == 11
    first, width = layout.row_span([0, 7, 8, 11])
    assert first.tolist() == [0, 0, 8, 8] and width.tolist() == [8, 8, 4, 4]


@pytest.mark.parametrize("n,codewords,degree", [(72, 16, 1), (72, 16, 4), (39, 10, 4), (152, 7, 8), (45, 5, 5)])
def test_mapping_is_a_bijection(n, codewords, degree):
    layout = ColumnInterleaving(n, codewords, degree)
    cells = np.arange(layout.cells)
    codeword, bit = layout.cell_to_codeword(cells)
    assert np.array_equal(layout.codeword_to_cell(codeword, bit), cells)
    assert (np.bincount(codeword, minlength=codewords) == n).all()
    full_rows = codewords // degree * degree * n
    p = cells[:full_rows] % (degree * n)  # in full rows: column p = bit p // degree of codeword p % degree
    assert np.array_equal(codeword[:full_rows] % degree, p % degree) and np.array_equal(bit[:full_rows], p // degree)


def test_mapping_rejects_out_of_range():
    layout = ColumnInterleaving(72, 4, 2)
    with pytest.raises(UpsetError, match="outside"):
        layout.cell_to_codeword(288)
    with pytest.raises(UpsetError, match="outside"):
        layout.codeword_to_cell(4, 0)
    with pytest.raises(UpsetError, match=">= 1"):
        ColumnInterleaving(72, 4, 0)


# ---------------------------------------------------------------- row-end rule

def test_clusters_shift_to_fit_at_row_end():
    layout = ColumnInterleaving(8, 6, 2)  # rows of 16 cells
    for size in (1, 2, 3, 4):
        struck = np.arange(layout.cells)
        start = layout.place_clusters(struck, size)
        first, width = layout.row_span(struck)
        assert (start >= first).all() and (start + size <= first + width).all()   # one row, full size
        assert (start <= struck).all() and (struck < start + size).all()          # holds the struck cell
        inner = struck % 16 <= 16 - size
        assert np.array_equal(start[inner], struck[inner])                        # unshifted inside
        assert int(layout.place_clusters(15, size)) == 16 - size                  # last cell of row 0


def test_cluster_larger_than_row_or_crossing_a_row_is_rejected():
    layout = ColumnInterleaving(4, 3, 1)  # rows of 4 cells
    with pytest.raises(UpsetError, match="larger than its row"):
        layout.place_clusters(0, 5)
    with pytest.raises(UpsetError, match="crosses the end"):
        layout.cluster_errors(3, 2)


# ---------------------------------------------------------------- clusters -> codeword errors

@pytest.mark.parametrize("degree", [1, 2, 4, 8])
@pytest.mark.parametrize("size", [1, 2, 3, 4])
def test_cluster_hits_min_size_degree_codewords(degree, size):
    layout = ColumnInterleaving(72, 16, degree)
    struck = np.arange(layout.cells)
    hits = layout.cluster_errors(layout.place_clusters(struck, size), size)
    per_upset = np.bincount(hits.upset, minlength=len(struck))
    assert (per_upset == min(size, degree)).all()
    assert np.array_equal(np.bincount(hits.upset, weights=hits.patterns.sum(axis=1)), np.full(len(struck), size))
    for i in (0, 100, len(struck) - 1):  # the patterns are exactly the cells of the cluster
        rows = hits.upset == i
        cw, bit = np.nonzero(hits.patterns[rows])
        cells = layout.codeword_to_cell(hits.codeword[rows][cw], bit)
        assert sorted(cells.tolist()) == list(range(hits.start[i], hits.start[i] + size))


@pytest.mark.parametrize("size", [1, 2, 3, 4])
def test_interleaving_at_least_cluster_size_makes_secded_correct_everything(size):
    code = SecdedCode(64)
    layout = ColumnInterleaving(code.code_bits, 12, degree=4)
    struck = np.arange(layout.cells)
    hits = layout.cluster_errors(layout.place_clusters(struck, size), size)
    assert (hits.patterns.sum(axis=1) == 1).all()  # single-bit errors ...
    for i in range(0, len(struck), 97):              # ... in distinct codewords
        assert len(set(hits.codeword[hits.upset == i].tolist())) == size
    batch = code.decode_many(hits.patterns)
    assert (batch.outcomes == "corrected").all() and not batch.data_errors.any()


def test_no_interleaving_makes_a_two_cell_cluster_a_double_error():
    code = SecdedCode(64)
    layout = ColumnInterleaving(code.code_bits, 12, degree=1)
    struck = np.arange(layout.cells)
    hits = layout.cluster_errors(layout.place_clusters(struck, 2), 2)
    assert len(hits.codeword) == len(struck) and (hits.patterns.sum(axis=1) == 2).all()
    bits = np.nonzero(hits.patterns)[1].reshape(-1, 2)
    assert (bits[:, 1] - bits[:, 0] == 1).all()  # adjacent codeword bits
    assert (code.decode_many(hits.patterns).outcomes == "detected").all()


def test_draw_cluster_errors_end_to_end():
    model = parse_upset_model(MCU)
    code = SecdedCode(32)
    layout = ColumnInterleaving(code.code_bits, 64, degree=2)
    struck = np.random.default_rng(3).integers(0, layout.cells, 4000)
    hits = draw_cluster_errors(model, layout, struck, np.random.default_rng(9))
    again = draw_cluster_errors(model, layout, struck, np.random.default_rng(9))
    assert np.array_equal(hits.size, again.size) and np.array_equal(hits.patterns, again.patterns)
    assert np.array_equal(hits.size, model.draw_sizes(np.random.default_rng(9), 4000))
    outcome = code.decode_many(hits.patterns).outcomes
    per_codeword_bits = hits.patterns.sum(axis=1)
    # degree 2: sizes 1-2 give one bit per codeword (corrected), sizes 3-4 give a double error somewhere
    assert (outcome[per_codeword_bits == 1] == "corrected").all()
    assert (outcome[per_codeword_bits == 2] == "detected").all()
    big = np.isin(hits.upset, np.nonzero(hits.size >= 3)[0])
    assert (per_codeword_bits[~big] == 1).all() and (per_codeword_bits[big] == 2).any()


def test_upset_model_is_plain_data():
    model = UpsetModel((2, 1), (0.25, 0.75))
    assert model.sizes == (1, 2) and model.fractions == (0.75, 0.25)
    assert hash(model) == hash(UpsetModel((1, 2), (0.75, 0.25)))
    with pytest.raises(UpsetError, match="one fraction per size"):
        UpsetModel((1, 2), (1.0,))
