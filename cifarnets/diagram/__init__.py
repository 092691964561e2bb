"""Block diagrams of the networks, built from their own modules: graph.py makes the graph, dot.py draws it."""

from .dot import to_dot, to_dot_side_by_side
from .graph import LEVELS, Cluster, Diagram, Edge, Node, diagram

__all__ = ["LEVELS", "Cluster", "Diagram", "Edge", "Node", "diagram", "to_dot", "to_dot_side_by_side"]
