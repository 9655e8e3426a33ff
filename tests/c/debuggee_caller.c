/* Calls into debuggee.c, so that a backtrace crosses the two objects of one module. */
int ll_debuggee_scale(int x);

int ll_debuggee_twice(int x)
{
    int once = ll_debuggee_scale(x); /* twice: the call */
    return once * 2;
}
