"""What the operator sees: the live console, reports and plots, exports."""
