"""Tuning of the API process itself: its malloc, heap trims, thread priorities, the GIL switch
interval and how many model and torch threads serve. Each module says what it measured."""
