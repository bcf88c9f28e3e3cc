/* The example application's own board layer: a UART, a SysTick millisecond/cycle timer, exit. */
#ifndef APP_BOARD_H
#define APP_BOARD_H

#include <stdint.h>

#define APP_SYSTICK_RELOAD 0x00FFFFFFu

void board_init(void);
uint32_t board_clock_hz(void);
void board_uart_write(uint8_t byte);
int board_uart_read_nonblocking(void); /* -1 when nothing is waiting */
uint32_t board_ticks(void);            /* SysTick extended to 32 bits: CPU clock ticks */
void board_log(const char *text);

#endif /* APP_BOARD_H */
