"""Renderings of graphs and reports: DOT, Mermaid, images, JUnit XML, text."""
