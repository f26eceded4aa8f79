"""``snowload runs report``: one or more stored runs as a self-contained HTML file.

:mod:`model` reads what a run has from a store, :mod:`charts` and :mod:`svg` draw it as
inline SVG, :mod:`tables` lays out the figures, :mod:`page` puts the document together.
"""
