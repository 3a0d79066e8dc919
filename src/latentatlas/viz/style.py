"""One palette and one way to name a class, for every figure, the report and the explorer page."""

from __future__ import annotations

# matplotlib's tab10, the tutorial's colours: class k is drawn in TAB10[k % 10] everywhere.
TAB10 = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")


_TEX = {r"\phi": "φ", r"\theta": "θ", "_1": "₁", "_2": "₂", "_3": "₃", "$": ""}


def plain_label(label: str) -> str:
    """A matplotlib mathtext label (``$z_1$``, ``$\\phi$``) as plain Unicode, for HTML and plotly."""
    for tex, text in _TEX.items():
        label = label.replace(tex, text)
    return label


def class_colour(label: int) -> str:
    return TAB10[int(label) % len(TAB10)]


def class_name(classes, label: int) -> str:
    """A class label's name: the data set's own where it has one, else the number."""
    return str(classes[label]) if classes is not None and label < len(classes) else str(label)


def class_names(classes, n_classes: int) -> list[str]:
    """Names for labels 0 .. n_classes - 1."""
    return [class_name(classes, k) for k in range(n_classes)]
