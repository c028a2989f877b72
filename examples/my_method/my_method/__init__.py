"""An example plug-in package for the Fast-BAT suite: one method, ``my_method.my_fgsm``."""
