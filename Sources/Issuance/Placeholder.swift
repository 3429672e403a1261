// Placeholder; the module's code lands here.
