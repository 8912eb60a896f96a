// Render the math that pymdownx.arithmatex (generic mode) leaves in .arithmatex elements, with the
// KaTeX shipped in docs/assets/katex/. Material's instant navigation replaces the page body without
// a reload, so render on every `document$` event when it exists, else once on load.
(function () {
  var macros = {
    // The Spanish post (docs/es/ddpm.md) keeps its outline's \orange{...} (its Jekyll theme's macro).
    "\\orange": "\\textcolor{orange}{#1}",
  };
  function render(root) {
    // the math of the page, and of the table of contents (headings such as the post's
    // "Forward process $q(x_t|x_{t-1})$" reach it as plain \(...\) text)
    root.querySelectorAll(".arithmatex, .md-nav--secondary .md-nav__link").forEach(function (el) {
      renderMathInElement(el, {
        delimiters: [
          { left: "\\(", right: "\\)", display: false },
          { left: "\\[", right: "\\]", display: true },
        ],
        macros: macros,
        throwOnError: false,
      });
    });
  }
  if (typeof document$ !== "undefined") {
    document$.subscribe(function () { render(document.body); });
  } else {
    document.addEventListener("DOMContentLoaded", function () { render(document.body); });
  }
})();
