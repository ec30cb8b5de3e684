"""Small helpers shared by the AppTest files."""


def page_texts(at) -> str:
    """Every text element an AppTest run shows, joined: what a user reads on the page."""
    parts = []
    for kind in ("markdown", "caption", "info", "warning", "error", "success", "title", "subheader"):
        parts += [str(e.value) for e in getattr(at, kind)]
    return "\n".join(parts)
