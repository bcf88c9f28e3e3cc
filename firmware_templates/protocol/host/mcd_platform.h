/* Host build only: the agreed platform interface (the firmware's own mcd_platform.h is used on targets). */
#ifndef MCD_PLATFORM_H
#define MCD_PLATFORM_H
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif
void mcd_platform_init(void);
void mcd_uart_putc(uint8_t c);
int mcd_uart_getc(void);
int mcd_uart_try_getc(void);
uint32_t mcd_timer_read(void);
uint64_t mcd_timer_elapsed(uint32_t start, uint32_t end);
const char *mcd_timer_name(void);
uint32_t mcd_cpu_clock_hz(void);
__attribute__((noreturn)) void mcd_exit(int code);
#ifdef __cplusplus
}
#endif
#endif
