/* Just enough of NuttX for symtab.c */
struct symtab_s { const char *sym_name; const void *sym_value; };
