/* Minimal UART text output (no printf: newlib-nano cannot print 64-bit integers). */
#ifndef MCD_PRINT_H
#define MCD_PRINT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

void mcd_print(const char *s);
void mcd_print_u64(uint64_t v);
void mcd_print_i32(int32_t v);
void mcd_print_hex(const void *data, size_t n);

#ifdef __cplusplus
}
#endif
#endif /* MCD_PRINT_H */
