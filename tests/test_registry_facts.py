"""``IntegerModel.registry_facts`` (protocol 5, "The row rule"; 10.1): the dtypes and the row rule
a model's registry entry must state, computed from the shape rules, checked against
``slot_shapes`` on every row count up to a bound, and the entry key ``IntegerModel.entry``."""

import math
import random

import pytest
from helpers import random_ref_model, small_transformer, to_integer_model
from referee import ops as k
from referee.errors import InputError
from referee.hashing import enc, keccak256
from referee.model import MAX_ROWS, IntegerModel, RegistryFacts, entry_key, entry_mismatch


def _valid(model: IntegerModel, rows: int) -> bool:
    try:
        model.slot_shapes(rows)
        return True
    except InputError:
        return False


def _transposed(rows_in: int) -> IntegerModel:
    """An MLP layer [R, 4] -> [R, 6], then a transpose of groups of ``rows_in`` rows:
    [R, 6] -> [R / rows_in * 6, rows_in], valid only for R a multiple of rows_in."""
    mlp = to_integer_model(random_ref_model(random.Random(5), 4, [6]))
    return IntegerModel(4, [*mlp.ops, k.TransposeOp(input_slot=1, in_cols=6, out_cols=rows_in)],
                        name="transposed").validate()


def test_mlp_facts_succeeds():
    model = to_integer_model(random_ref_model(random.Random(1), 7, [6, 5, 8, 4]))
    assert model.registry_facts() == RegistryFacts(0, 0, 1, MAX_ROWS, 1, 1)
    assert model.registration()[4:] == (0, 0, 1, MAX_ROWS, 1, 1)


@pytest.mark.parametrize("rows_in", [1, 2, 3, 4, 6])
def test_row_rule_matches_slot_shapes_succeeds(rows_in):
    model = _transposed(rows_in)
    step, most, num, den = model.row_rule
    g = math.gcd(6, rows_in)
    assert step == rows_in and (num, den) == (6 // g, rows_in // g)  # rows_out = rows / rows_in * 6
    for rows in range(1, 40):  # the valid row counts are exactly the multiples of the step
        assert _valid(model, rows) == (rows % step == 0), rows
        if rows % step == 0:
            assert model.slot_shapes(rows)[-1][0] * den == rows * num
    assert _valid(model, most) and most % step == 0
    widest = max(r for r, _, _ in model.slot_shapes(most))
    assert widest <= MAX_ROWS and not _valid(model, most + step)


@pytest.mark.parametrize("kind", ["decoder", "encoder"])
def test_token_model_facts_succeeds(kind):
    model = small_transformer(kind)
    facts = model.registry_facts()
    assert facts.input_dtype == 1 and facts.output_dtype == model.output_dtype and facts.row_step == 1
    assert (facts.out_rows_num, facts.out_rows_den) == ((model.input_cols, 1) if kind == "decoder" else (1, 1))
    assert _valid(model, facts.max_input_rows) and not _valid(model, facts.max_input_rows + 1)
    assert model.entry == entry_key(model.root, facts) == keccak256(model.root + enc(*facts[1:]))


def test_entry_mismatch_names_the_fact_succeeds():
    model = _transposed(3)
    entry = dict(root=model.root, ops_root=model.ops_root, n_ops=2, input_cols=4, output_cols=3,
                 **model.registry_facts()._asdict())
    as_entry = type("Entry", (), {})
    good = as_entry()
    good.__dict__.update(entry)
    assert entry_mismatch(model, good) is None
    bad = as_entry()
    bad.__dict__.update({**entry, "row_step": 1})
    assert "row_step is 1" in entry_mismatch(model, bad) and "gives 3" in entry_mismatch(model, bad)

