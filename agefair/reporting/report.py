"""The audit report's public entry points (the page itself: agefair.reporting.page).

The report is built by: format (numbers and text), view (reading a summary), charts (plotly),
sections and details (each section's template context), robustness (the robustness section) and
page (assembly and render).
"""

from agefair.reporting.page import (  # noqa: F401  (the report's public API)
    SECTIONS,
    TEMPLATE_DIR,
    build_context,
    chart_figures,
    chart_ids,
    embedded_plotly,
    plotly_bundle,
    render_html,
    render_report,
    without_plotly_js,
)
