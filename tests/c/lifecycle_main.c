#include "show.h"

int get_init_calls(void);
int get_fini_calls(void);

int main(void)
{
    SHOW_I(get_init_calls());
    SHOW_I(get_fini_calls());
    return 0;
}
