int plugin_transform(int x) { return x * 2; }
