# Golden module two: a tail call into module one and a data table with pointers to the static
# module and to itself. No _unresolved, no bss.
	.text
	.globl two_func
two_func:
	b one_func

	.data
	.align 2
	.globl two_data
two_data:
	.long 1, 2, dol_func, two_func
