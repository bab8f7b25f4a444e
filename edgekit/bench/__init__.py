"""Host side of `edgekit bench` and `edgekit report`: zoo networks exported for the board-side measuring code
(``zoo.py``), MAC counts, published figures, and the merged cross-device report (Markdown, HTML, plots)."""
