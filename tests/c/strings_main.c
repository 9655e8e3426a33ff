#include "show.h"

int text_length(int which);
int words_sorted_checksum(int mode);
int find_sorted(int key);
int format_and_scan(int n);
long text_hash(int which);
int lines_emitted(void);

int main(void)
{
    SHOW_I(text_length(3));
    SHOW_I(words_sorted_checksum(0));
    SHOW_I(words_sorted_checksum(1));
    SHOW_I(find_sorted(11));
    SHOW_I(find_sorted(48));
    SHOW_I(find_sorted(100));
    SHOW_I(find_sorted(-4));
    SHOW_I(format_and_scan(6));
    SHOW_I(format_and_scan(42));
    SHOW_L(text_hash(0));
    SHOW_L(text_hash(6));
    SHOW_I(lines_emitted());
    return 0;
}
