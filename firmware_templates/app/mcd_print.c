#include "mcd_print.h"

#include "mcd_platform.h"

void mcd_print(const char *s)
{
    while (*s) {
        mcd_uart_putc((uint8_t)*s++);
    }
}

void mcd_print_u64(uint64_t v)
{
    char buf[21];
    size_t i = sizeof buf - 1;
    buf[i] = '\0';
    do {
        buf[--i] = (char)('0' + (int)(v % 10u));
        v /= 10u;
    } while (v);
    mcd_print(&buf[i]);
}

void mcd_print_i32(int32_t v)
{
    if (v < 0) {
        mcd_uart_putc('-');
        mcd_print_u64((uint64_t)(-(int64_t)v));
    } else {
        mcd_print_u64((uint64_t)v);
    }
}

void mcd_print_hex(const void *data, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    const uint8_t *p = (const uint8_t *)data;
    for (size_t i = 0; i < n; ++i) {
        mcd_uart_putc((uint8_t)digits[p[i] >> 4]);
        mcd_uart_putc((uint8_t)digits[p[i] & 0xFu]);
    }
}
