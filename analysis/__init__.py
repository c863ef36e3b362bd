"""Notebook analytics: what only ``notebooks/`` use, kept out of the service image.

Installed with the ``analysis`` extra (scikit-learn, pandas, matplotlib, folium); the Dockerfile
does not copy this package, and import-linter forbids ``hexcast``, the domains and
``providersim`` from importing it, so a service never depends on it. It uses the domains only
through their public names (``targeting.__all__``) and ``hexcast.core``.

- :mod:`analysis.footfall`: visits per H3 cell and per store, store funnels (pure).
- :mod:`analysis.clusters`: recipients clustered by interests and visit behaviour (pure).
- :mod:`analysis.results`: campaign planning and results arithmetic, holdout lift (pure).
- :mod:`analysis.queries`: the read-only SQL behind them (run outcomes, control groups,
  recipients' visit behaviour, visits in a window).

Notebooks import the modules (``from analysis import footfall, queries``).
"""

from analysis import clusters, footfall, queries, results

__all__ = ["clusters", "footfall", "queries", "results"]
