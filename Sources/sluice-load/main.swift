import ArgumentParser

// The whole tool is LoadCommand; main.swift only starts it (STYLE.md §1: a thin entry point).
LoadCommand.main()
