/* firebreak dashboard (placeholder until the dashboard lands) */
document.getElementById("app").textContent = "firebreak";
