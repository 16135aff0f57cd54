/* The participant's page: one self-contained HTML document, served at /. */
#ifndef CZ_TURING_PAGE_H
#define CZ_TURING_PAGE_H

extern const char cz_turing_page[];

#endif
