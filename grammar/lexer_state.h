/* State the reentrant scanner keeps between tokens. */
#ifndef NETC_LEXER_STATE_H
#define NETC_LEXER_STATE_H
#include "diag.h"

typedef struct lex_state {
    const source *src;
    diag_list *dl;
    int line, col;         /* position of the next character */
    int last;              /* last token returned, 0 before the first */
    int prev;              /* the token before it */
    int eof_newline_sent;
} lex_state;
#endif
