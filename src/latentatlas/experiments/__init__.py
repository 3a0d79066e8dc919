"""What users run on top of single runs: the demo, honest comparisons, sweeps and the speed benchmark."""
