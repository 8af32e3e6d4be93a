"""The dpc CrossGuard policy pack: one module per concern; `pack` gathers their policies."""
