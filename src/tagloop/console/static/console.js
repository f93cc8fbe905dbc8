// Draws the overview's charts (Apache ECharts, vendored) from the JSON island the server
// renders, again after every htmx refresh. Without scripts the numbers are in the page.
(function () {
  function draw() {
    var island = document.getElementById("figures");
    if (!island || !window.echarts) return;
    var data = JSON.parse(island.textContent);
    document.querySelectorAll("[data-chart]").forEach(function (el) {
      var chart = echarts.getInstanceByDom(el) || echarts.init(el);
      var kind = el.dataset.chart, series = data[el.dataset.series];
      var option;
      if (kind === "pie") {
        option = { tooltip: {}, animation: false, series: [{ type: "pie", radius: "65%",
          data: Object.keys(series).map(function (k) { return { name: k, value: series[k] }; }) }] };
      } else {
        option = { tooltip: { trigger: "axis" }, animation: false,
          grid: { left: 48, right: 16, top: 16, bottom: 32 },
          xAxis: { type: "category", data: data.labels }, yAxis: { type: "value" },
          series: [{ type: kind, data: series, color: kind === "bar" ? "#0b57d0" : "#b06000" }] };
      }
      chart.setOption(option, true);
    });
  }
  document.addEventListener("DOMContentLoaded", draw);
  document.addEventListener("htmx:afterSettle", draw);
  window.addEventListener("resize", function () {
    document.querySelectorAll("[data-chart]").forEach(function (el) {
      var chart = window.echarts && echarts.getInstanceByDom(el);
      if (chart) chart.resize();
    });
  });
})();
