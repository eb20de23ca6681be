from deblur.analysis.run import analyze as analyze
from deblur.config.compose import compose as compose
