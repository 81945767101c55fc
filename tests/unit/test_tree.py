import pytest

from searchlearn.learn.advantages import tree_values, treerl_advantages
from searchlearn.learn.tree import prefix_tree


def test_shared_prefixes_become_segments_and_each_completion_ends_at_its_own_leaf():
    # a b c | a b d e | a b d e (a duplicate) | x
    tree = prefix_tree([[1, 2, 3], [1, 2, 4, 5], [1, 2, 4, 5], [9]])
    # segments in creation order: root, "a b", "c"+end0, "d e", end1, end2, "x"+end3
    assert tree.parents == [-1, 0, 1, 1, 3, 3, 0]
    assert tree.leaf_of == [2, 4, 5, 6]
    assert tree.node_of == [[1, 1, 2], [1, 1, 3, 3], [1, 1, 3, 3], [6]]
    assert tree.owner == [-1, 0, 0, 1, 1, 2, 3]
    assert tree.sizes == [0, 2, 1, 2, 0, 0, 1]
    assert tree.rewards([1, 0, 1, 0]) == [None, None, 1.0, None, 0.0, 1.0, 0.0]


def test_each_token_is_trained_once_in_its_owners_row():
    tree = prefix_tree([[1, 2, 3], [1, 2, 4, 5], [1, 2, 4, 5], [9]])
    assert [tree.trained(r) for r in range(4)] == [[True, True, True], [False, False, True, True],
                                                  [False, False, False, False], [True]]
    trained = sum(sum(tree.trained(r)) for r in range(4))
    assert trained == sum(tree.sizes) == 6  # distinct (state, token) pairs: a b c d e x


def test_a_completion_that_is_a_prefix_of_another_ends_at_an_empty_leaf():
    tree = prefix_tree([[1, 2], [1, 2, 3]])
    values, leaves = tree_values(tree.parents, tree.rewards([1.0, 0.0]))
    # root -> "1 2" -> {end0 (no tokens), "3"+end1}
    assert tree.parents == [-1, 0, 1, 1] and tree.sizes == [0, 2, 0, 1]
    assert values.tolist() == pytest.approx([0.5, 0.5, 1.0, 0.0]) and leaves.tolist() == [2, 2, 1, 1]


def test_chains_with_a_shared_deterministic_prefix_get_no_credit_for_it():
    # both chains write the same first step: it decides nothing, so TreeRL gives it 0 and the split all the credit
    tree = prefix_tree([[7, 7, 1], [7, 7, 2]])
    a = treerl_advantages(tree.parents, tree.rewards([1.0, 0.0]))
    shared = tree.node_of[0][0]
    assert a[shared].item() == pytest.approx(0.0)
    assert a[tree.leaf_of[0]].item() == pytest.approx(1.0) and a[tree.leaf_of[1]].item() == pytest.approx(-1.0)
