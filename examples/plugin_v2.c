int plugin_transform(int x) { return x * x + 1; }
