/* Calls a function no module defines yet: the call reaches the unresolved handler until
 * provider.c is linked, then goes straight to it. */
extern int later(int x);

int ask_later(int x) { return later(x) + 1; }
