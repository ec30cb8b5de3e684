"""What the pages and exports show: run views, figures, charts, comparisons, the palette."""
