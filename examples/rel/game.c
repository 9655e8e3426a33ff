/* A game module: calls the static module, and a physics module that may not be loaded. */
void OSReport(const char *message, int value);
int next_frame(void);
int physics_step(int x);       /* in physics.rel */

static int score;

void _prolog(void) { score = 10; OSReport("game: _prolog", score); }
void _epilog(void) { OSReport("game: _epilog", score); }
int _unresolved(void) { OSReport("game: physics is not loaded", 0); return -1; }

int game_tick(int x) {
    int frame = next_frame();
    score += physics_step(x);
    OSReport("game: frame", frame);
    return score;
}
