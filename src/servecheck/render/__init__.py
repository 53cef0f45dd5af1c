"""The output layer: one module per command owning its text, markdown and JSON.

Commands call `render.<command>.emit(result, args)` and `exit_code(result)`; rich is imported
only when text goes to the terminal.
"""
