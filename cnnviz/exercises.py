"""Predict-then-check exercises for the labs: a student's answer against cnnviz's computed one."""
import numpy as np

__all__ = ["check"]


def check(my_answer, answer, *, rtol: float = 1e-6) -> bool:
    """Print whether ``my_answer`` matches ``answer`` (numbers, shapes or arrays) and return it.

    ``None`` means "not answered yet": the lab still runs top to bottom.
    """
    if my_answer is None:
        print("Fill in my_answer first: replace None with your prediction, then run this cell again.")
        return False
    try:
        right = np.shape(my_answer) == np.shape(answer) and np.allclose(
            np.asarray(my_answer, dtype=float), np.asarray(answer, dtype=float), rtol=rtol)
    except (TypeError, ValueError):
        right = False
    shown = answer.tolist() if isinstance(answer, np.ndarray) else answer
    if isinstance(shown, np.generic):
        shown = shown.item()
    print(f"Correct, it is {shown}. Well done!" if right
          else f"Not quite: you said {my_answer!r}, cnnviz computes {shown}.")
    return right
