/* Generic prompts whose layer inputs an edit preserves: everyday text and the common
   relation templates with no particular subject, so an edit cannot act on what the
   template alone says. Written for this library. */
#include "generic_prompts.h"

const char *const kne_generic_prompts[] = {
    "The weather today is",
    "She opened the door and walked into the",
    "He is a native speaker of",
    "The mother tongue of this person is",
    "The capital city of the country is",
    "This company was founded in the city of",
    "The official language of the region is",
    "The author of the book was born in",
    "He plays the position of",
    "The album was released by the record label",
    "The river flows into the",
    "Her profession is a",
    "The headquarters of the organisation are in",
    "The original language of the film was",
    "The team plays its home games in",
    "The product was developed by",
    "He works as a",
    "The citizens of this country speak",
    "Their religion is",
    "The show was first aired on",
    "The city is located in the continent of",
    "The instrument she plays is the",
    "What is the name of the company that makes it? It is",
    "In which country is the town located? It is",
    "The genre of this music is",
    "The twin city of the town is",
    "This person is a citizen of",
    "The building was designed by",
    "He was employed by",
    "It is known for its",
    "A long time ago, in a small village, there lived a",
    "The results of the study show that",
};
const size_t kne_n_generic_prompts = sizeof kne_generic_prompts / sizeof kne_generic_prompts[0];
