# Empties the fuzz targets' scratch folders before ctest -L fuzz runs them: each run starts
# from the committed corpus alone.
foreach(name IN LISTS NAMES)
  file(REMOVE_RECURSE ${WORK}/${name})
  file(MAKE_DIRECTORY ${WORK}/${name})
endforeach()
