"""The notebooks shipped with crmkit: where they are, and copies for a user to open.

``notebooks/`` in the project is their one source: the analyst notebooks (01-04), the Voilà
apps (``apps/``) and the report (``reports/``). A built package carries them as
``crmkit/notebooks`` (``setup.py`` copies them), found with :mod:`importlib.resources`, so
``crmkit app`` and ``crmkit report`` work from any folder after ``pip install``. An editable
install (a checkout) reads them from the checkout's ``notebooks/``. Never the current folder.
"""

from __future__ import annotations

import os
import shutil
from importlib import resources
from pathlib import Path

from crmkit.errors import CrmkitError

#: The analyst notebooks, in reading order, that ``crmkit notebooks DIR`` copies.
ANALYST_NOTEBOOKS = (
    "01_customers_and_deals.ipynb",
    "02_segmentation.ipynb",
    "03_forecast.ipynb",
    "04_marketing.ipynb",
)


def notebooks_dir() -> Path:
    """Return the folder of crmkit's notebooks: in the installed package, else the checkout.

    Returns
    -------
    Path
        ``crmkit/notebooks`` inside the installed package; for an editable install (the
        package inside a checkout holding ``pyproject.toml``), the checkout's ``notebooks/``.

    Raises
    ------
    CrmkitError
        When neither exists (a broken installation).
    """
    packaged = resources.files("crmkit") / "notebooks"
    if isinstance(packaged, Path) and packaged.is_dir():
        return packaged
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "pyproject.toml").is_file() and (checkout / "notebooks").is_dir():
        return checkout / "notebooks"
    raise CrmkitError(
        f"crmkit's notebooks are missing from its installation ({packaged}); reinstall crmkit"
    )


def copy_notebooks(dest: str | os.PathLike[str], *, overwrite: bool = False) -> list[Path]:
    """Copy the analyst notebooks into a folder, to open in JupyterLab.

    Parameters
    ----------
    dest
        Folder to copy into (made if missing).
    overwrite
        Replace notebooks of the same name already in ``dest`` (default: refuse, changing
        nothing).

    Returns
    -------
    list of Path
        The copies, in reading order.

    Raises
    ------
    CrmkitError
        When ``dest`` is a file, or already holds one of the notebooks and ``overwrite`` is
        False.
    """
    folder = Path(dest)
    if folder.exists() and not folder.is_dir():
        raise CrmkitError(f"{folder} is a file, not a folder")
    source = notebooks_dir()
    targets = [folder / name for name in ANALYST_NOTEBOOKS]
    present = [t.name for t in targets if t.exists()]
    if present and not overwrite:
        raise CrmkitError(
            f"{folder} already holds {', '.join(present)}; nothing was copied "
            "(--overwrite replaces them)"
        )
    folder.mkdir(parents=True, exist_ok=True)
    for name, target in zip(ANALYST_NOTEBOOKS, targets, strict=True):
        tmp = target.with_name(f".{name}.tmp")
        shutil.copyfile(source / name, tmp)
        tmp.replace(target)
    return targets
