/* A physics module, linked after the game module that calls it. */
int physics_step(int x) { return x * x; }
