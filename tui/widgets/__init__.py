"""Widgets of the snowload TUI: phase timeline, KPI bar, plots and table helpers."""
