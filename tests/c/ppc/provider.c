int later(int x) { return x * 100; }
