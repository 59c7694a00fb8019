"""Pictures and Jupyter views of graphs, plans and results.

Importing this package registers the HTML views that the core types' ``_repr_html_``
use (see :mod:`memplan.views`); matplotlib is imported only when a figure is drawn.
"""

from __future__ import annotations

from memplan.views import register_html
from memplan.viz.display import cost_html, graph_html, result_html
from memplan.viz.timeline import timeline_html

register_html("graph", graph_html)
register_html("cost", cost_html)
register_html("result", result_html)
register_html("timeline", timeline_html)
