#include "plot_svg.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static void xml_text(FILE *f, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '&': fputs("&amp;", f); break;
        case '"': fputs("&quot;", f); break;
        default: fputc(*s, f);
        }
    }
}

/* white -> orange -> dark red */
static void heat(double t, int *r, int *g, int *b)
{
    if (!(t >= 0)) t = 0;
    if (t > 1) t = 1;
    if (t < 0.5) {
        double u = t / 0.5;
        *r = 255;
        *g = (int)(255 - u * (255 - 160));
        *b = (int)(255 - u * 255);
    } else {
        double u = (t - 0.5) / 0.5;
        *r = (int)(255 - u * (255 - 150));
        *g = (int)(160 - u * 160);
        *b = 0;
    }
}

static const char *const palette[] = {"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1"};

static void fmt_mass(char *buf, size_t cap, double v)
{
    if (v <= 0) snprintf(buf, cap, "0");
    else if (v >= 100) snprintf(buf, cap, "%.0f", v);
    else if (v >= 1) snprintf(buf, cap, "%.2g", v);
    else snprintf(buf, cap, "%.2g", v);
}

int cli_plot_svg_write(const char *path, const cli_plot *p)
{
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    const int L = p->n_layers, M = p->n_modules;
    const int cell_w = L > 24 ? 26 : 48, cell_h = 34, left = 90, top = 70;
    const int hm_w = cell_w * L, hm_h = cell_h * M;
    const int bar_top = top + (hm_h > 130 ? hm_h : 130) + 60, bar_h = 160;
    int width = left + hm_w + 170, height = bar_top + bar_h + 60;
    if (width < 720) width = 720;
    double max_cell = 0, max_layer = 0;
    for (int l = 0; l < L; l++) {
        double tot = 0;
        for (int m = 0; m < M; m++) {
            double v = p->mass[m * L + l];
            if (v > max_cell) max_cell = v;
            if (v > 0) tot += v;
        }
        if (tot > max_layer) max_layer = tot;
    }
    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
               "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
               "font-family=\"Helvetica, Arial, sans-serif\">\n"
               "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
            width, height, width, height);
    fprintf(f, "<text x=\"%d\" y=\"26\" font-size=\"15\" font-weight=\"bold\">", 10);
    xml_text(f, p->title);
    fprintf(f, "</text>\n<text x=\"%d\" y=\"46\" font-size=\"11\" fill=\"#555\">", 10);
    xml_text(f, p->subtitle);
    fprintf(f, "</text>\n");
    /* heat map */
    for (int m = 0; m < M; m++) {
        int y = top + m * cell_h;
        fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"12\" text-anchor=\"end\">", left - 8, y + cell_h / 2 + 4);
        xml_text(f, p->module_names[m]);
        fprintf(f, "</text>\n");
        for (int l = 0; l < L; l++) {
            double v = p->mass[m * L + l];
            size_t c = p->count[m * L + l];
            int x = left + l * cell_w, r, g, b;
            if (v < 0) {
                fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"#eee\" stroke=\"#ccc\"/>\n",
                        x, y, cell_w, cell_h);
                continue;
            }
            heat(max_cell > 0 ? v / max_cell : 0, &r, &g, &b);
            char mbuf[32];
            fmt_mass(mbuf, sizeof mbuf, v);
            fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"rgb(%d,%d,%d)\" stroke=\"#bbb\">"
                       "<title>layer %d %s: positive attribution %.6g, %zu neurons selected</title></rect>\n",
                    x, y, cell_w, cell_h, r, g, b, l, p->module_names[m], v, c);
            const char *ink = max_cell > 0 && v / max_cell > 0.6 ? "white" : "black";
            if (c)
                fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"12\" font-weight=\"bold\" text-anchor=\"middle\" "
                           "fill=\"%s\">%zu</text>\n",
                        x + cell_w / 2, y + 15, ink, c);
            if (cell_w >= 40)
                fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"9\" text-anchor=\"middle\" fill=\"%s\">%s</text>\n",
                        x + cell_w / 2, y + 28, ink, mbuf);
        }
    }
    for (int l = 0; l < L; l++)
        fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"11\" text-anchor=\"middle\">%d</text>\n",
                left + l * cell_w + cell_w / 2, top + hm_h + 16, l);
    fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"12\" text-anchor=\"middle\">layer</text>\n", left + hm_w / 2,
            top + hm_h + 32);
    /* legend of the heat map */
    int lx = left + hm_w + 20;
    fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"11\">positive attribution</text>\n", lx, top + 4);
    for (int i = 0; i < 10; i++) {
        int r, g, b;
        heat((9 - i) / 9.0, &r, &g, &b);
        fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"14\" height=\"10\" fill=\"rgb(%d,%d,%d)\"/>\n", lx,
                top + 10 + i * 10, r, g, b);
    }
    char mx[32];
    fmt_mass(mx, sizeof mx, max_cell);
    fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"10\">%s</text>\n", lx + 18, top + 19, mx);
    fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"10\">0</text>\n", lx + 18, top + 108);
    fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"10\" fill=\"#555\">bold: neurons kept</text>\n", lx,
            top + 126);
    /* stacked bars: mass per layer by module */
    fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"12\">positive attribution mass per layer, stacked by module"
               "</text>\n", left, bar_top - 14);
    fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#333\"/>\n", left, bar_top + bar_h,
            left + hm_w, bar_top + bar_h);
    for (int l = 0; l < L; l++) {
        double acc = 0;
        int x = left + l * cell_w + cell_w / 6, w = cell_w - cell_w / 3;
        for (int m = 0; m < M; m++) {
            double v = p->mass[m * L + l];
            if (!(v > 0) || !(max_layer > 0)) continue;
            double h = v / max_layer * bar_h, y = bar_top + bar_h - (acc + v) / max_layer * bar_h;
            fprintf(f, "<rect x=\"%d\" y=\"%.2f\" width=\"%d\" height=\"%.2f\" fill=\"%s\"><title>layer %d %s: "
                       "%.6g</title></rect>\n",
                    x, y, w, h, palette[m % 7], l, p->module_names[m], v);
            acc += v;
        }
        fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"11\" text-anchor=\"middle\">%d</text>\n",
                left + l * cell_w + cell_w / 2, bar_top + bar_h + 16, l);
    }
    fmt_mass(mx, sizeof mx, max_layer);
    fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"10\" text-anchor=\"end\">%s</text>\n", left - 6, bar_top + 4, mx);
    fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"10\" text-anchor=\"end\">0</text>\n", left - 6,
            bar_top + bar_h);
    fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"12\" text-anchor=\"middle\">layer</text>\n", left + hm_w / 2,
            bar_top + bar_h + 32);
    for (int m = 0; m < M; m++) {
        int y = bar_top + m * 16;
        fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"12\" height=\"12\" fill=\"%s\"/>\n", lx, y, palette[m % 7]);
        fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"11\">", lx + 16, y + 10);
        xml_text(f, p->module_names[m]);
        fprintf(f, "</text>\n");
    }
    fprintf(f, "</svg>\n");
    int bad = ferror(f);
    if (fclose(f) != 0) bad = 1;
    return bad ? -1 : 0;
}
