/* mcudeploy platform interface: UART, timer, clock and exit, one implementation per board family. */
#ifndef MCD_PLATFORM_H
#define MCD_PLATFORM_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

void mcd_platform_init(void);
void mcd_uart_putc(uint8_t c);
int mcd_uart_getc(void);     /* blocking, returns 0..255 */
int mcd_uart_try_getc(void); /* -1 if no byte is waiting */
uint32_t mcd_timer_read(void);
uint64_t mcd_timer_elapsed(uint32_t start, uint32_t end); /* in the unit mcd_timer_name() names */
const char *mcd_timer_name(void); /* "dwt-cycles", "systick-cycles" or "icount-instructions" */
uint32_t mcd_cpu_clock_hz(void);
/* Stack high-water by painting: paint the unused stack below the caller's frame, run, then count the
 * bytes from the top that are no longer paint. 0 where the stack is unknown (host builds). */
void mcd_stack_paint(void);
uint32_t mcd_stack_used(void);
uint32_t mcd_stack_size(void);
__attribute__((noreturn)) void mcd_exit(int code); /* semihosting exit on simulators; spins on hardware */

#ifdef __cplusplus
}
#endif
#endif /* MCD_PLATFORM_H */
