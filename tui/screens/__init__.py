"""The screens of the snowload TUI: runs, launch, live, detail, compare."""
