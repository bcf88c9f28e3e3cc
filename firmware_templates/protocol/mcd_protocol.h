/* mcudeploy device protocol: framed requests over the UART (see docs/protocol.md).
 *
 * Frame (little-endian): A5 5A | type u8 | flags u8 | seq u16 | len u32 | hcrc u16 | payload | crc32 u32
 * hcrc = low 16 bits of CRC-32 over type..len; crc32 = CRC-32 (IEEE) over type..hcrc + payload.
 * Uses mcd_platform.h, mcd_runtime.h and mcd_model_meta.h; one implementation for every runtime.
 */
#ifndef MCD_PROTOCOL_H
#define MCD_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MCD_PROTOCOL_VERSION 2u

enum mcd_msg_type {
    MCD_MSG_HELLO = 0x01,
    MCD_MSG_GET_HELLO = 0x02,
    MCD_MSG_INFER = 0x10,
    MCD_MSG_BENCH = 0x11,
    MCD_MSG_PROFILE = 0x12,
    MCD_MSG_INFER_RESULT = 0x90,
    MCD_MSG_BENCH_RESULT = 0x91,
    MCD_MSG_PROFILE_RESULT = 0x92,
    MCD_MSG_ERROR = 0x7F
};

enum mcd_error_code {
    MCD_ERR_BAD_CRC = 1,
    MCD_ERR_BAD_LENGTH = 2,
    MCD_ERR_UNKNOWN_TYPE = 3,
    MCD_ERR_INVOKE_FAILED = 4,
    MCD_ERR_TOO_LARGE = 5
};

#define MCD_FLAG_BOOT 0x01u  /* the unsolicited HELLO after reset */
#define MCD_FLAG_FRESH 0x02u /* on every frame since reset until the host sends GET_HELLO */

/* Announce HELLO (flag BOOT), then serve GET_HELLO / INFER / BENCH / PROFILE forever. */
void mcd_protocol_serve(void);

/* Building blocks, exposed for host tests and for apps that add their own messages. */
uint32_t mcd_crc32_update(uint32_t crc, const uint8_t *data, size_t len); /* start with 0 */
void mcd_protocol_send(uint8_t type, uint8_t flags, uint16_t seq, const uint8_t *payload, uint32_t len);
void mcd_protocol_send_hello(uint16_t seq, uint8_t flags);

#ifdef __cplusplus
}
#endif

#endif /* MCD_PROTOCOL_H */
