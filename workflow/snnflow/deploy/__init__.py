"""Deploying the trained SNN: NIR export (nir_graph) and its check in other frameworks
(nir_check)."""
