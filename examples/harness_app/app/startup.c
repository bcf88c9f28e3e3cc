/* Minimal Cortex-M start-up for the example: vector table, .data/.bss, FPU, SysTick as a timer. */
#include <stdint.h>

#include "board.h"

extern uint32_t __stack_top, __data_load, __data_start, __data_end, __bss_start, __bss_end;
extern int main(void);

static volatile uint32_t systick_wraps;

void SysTick_Handler(void) { systick_wraps++; }

uint32_t board_ticks(void)
{
    uint32_t hi, lo;
    do {
        hi = systick_wraps;
        lo = APP_SYSTICK_RELOAD - *(volatile uint32_t *)0xE000E018u; /* SYST_CVR counts down */
    } while (hi != systick_wraps);
    return (hi << 24) + lo;
}

void board_log(const char *text)
{
    while (*text) board_uart_write((uint8_t)*text++);
}

static void fault(void)
{
    board_log("\r\nAPP-FAULT\r\n");
    for (;;) {
    }
}

void Reset_Handler(void)
{
    *(volatile uint32_t *)0xE000ED88u |= 0xFu << 20; /* CPACR: FPU (and MVE) */
    __asm__ volatile("dsb\n\tisb" ::: "memory");
    const uint32_t *src = &__data_load;
    for (uint32_t *dst = &__data_start; dst < &__data_end;) *dst++ = *src++;
    for (uint32_t *dst = &__bss_start; dst < &__bss_end;) *dst++ = 0u;
    *(volatile uint32_t *)0xE000E014u = APP_SYSTICK_RELOAD; /* SYST_RVR */
    *(volatile uint32_t *)0xE000E018u = 0u;                 /* SYST_CVR */
    *(volatile uint32_t *)0xE000E010u = 0x7u;               /* processor clock, interrupt, enable */
    (void)main();
    for (;;) {
    }
}

__attribute__((section(".vectors"), used)) static void (*const vectors[16])(void) = {
    (void (*)(void))(uintptr_t)&__stack_top, Reset_Handler, fault, fault, fault, fault, fault, 0, 0, 0, 0,
    fault, fault, 0, fault, SysTick_Handler,
};
