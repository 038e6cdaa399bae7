"""The labs' predict-then-check helper."""
import numpy as np

from cnnviz.exercises import check


def test_check_accepts_right_answers_and_explains_wrong_ones(capsys):
    assert check(4, np.float64(4.0)) is True
    assert "Correct, it is 4.0" in capsys.readouterr().out
    assert check((5, 5), (5, 5)) is True
    assert check([[1, 2]], np.array([[1, 2]])) is True
    assert check(3, 4) is False
    assert "Not quite: you said 3, cnnviz computes 4" in capsys.readouterr().out
    assert check((4, 4), (5, 5)) is False
    assert check("thirty", 30) is False  # not a number: a wrong answer, not a traceback
    assert check([1, 2], [1, 2, 3]) is False


def test_an_unanswered_exercise_asks_for_an_answer(capsys):
    assert check(None, 30) is False
    assert "Fill in my_answer first" in capsys.readouterr().out
