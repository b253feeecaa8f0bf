"""Reading the rows of crmkit's HTML tables in tests (the app's and the report's)."""

from __future__ import annotations

import re


def data_rows(html_text: str, row_css: str) -> list[dict[str, str]]:
    """The ``data-col`` cells of each ``<tr class=row_css ...>`` row, with the row's attributes.

    Parameters
    ----------
    html_text
        HTML holding the table.
    row_css
        The rows' class.

    Returns
    -------
    list of dict
        One dict per row: its ``data-*`` attributes (without the prefix) and its cells'
        text by ``data-col``.
    """
    rows = []
    for m in re.finditer(r"<tr([^>]*)>(.*?)</tr>", html_text, re.S):
        attrs = dict(re.findall(r'([a-z_-]+)="([^"]*)"', m.group(1)))
        if attrs.get("class") != row_css:
            continue
        row = {k[5:]: v for k, v in attrs.items() if k.startswith("data-")}
        for cell_attrs, text in re.findall(r"<td([^>]*)>(.*?)</td>", m.group(2), re.S):
            col = re.search(r'data-col="([a-z0-9_]+)"', cell_attrs)
            if col:
                row[col.group(1)] = text
        rows.append(row)
    return rows
