"""Figures and the single-file HTML run report.

* :mod:`aekit.report.figures`: matplotlib figures (loss curves, image rows, code maps, …);
* :mod:`aekit.report.run_report`: ``build_run_report(run_dir)`` → one self-contained HTML
  page (every image embedded as base64), the engine of ``aekit report RUN_DIR``.
"""
